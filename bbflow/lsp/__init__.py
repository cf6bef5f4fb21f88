"""``bbflow lsp``: a language server for ``.flow`` files.

``program`` compiles the program an open file belongs to (its project, with the
editor's unsaved buffers in place of the files on disk) through the compiler's
own parser and checker; ``analysis`` answers editor questions (diagnostics,
hover, definition, completion, symbols) from that result as plain values;
``server`` is the only module that knows pygls and the protocol. The runtime
never imports this package.
"""
