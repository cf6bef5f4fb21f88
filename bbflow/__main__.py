from bbflow.cli import entry

entry()
