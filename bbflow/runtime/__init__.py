"""The bbflow runtime: executes generated modules against robot drivers.

It never imports the compiler, lark or networkx: a robot needs only this
package and the generated modules.
"""
