"""How the commands show their reports on stderr: one module per command group, each a few ``render`` functions.

A command parses its flags, makes one library call and hands the report to :func:`lutnas._common.show`, which
prints the ``--json`` document or calls the view. Views import only rich and the CLI's text helpers at import
time (the command line starts without pandas, torch or the packages it drives).
"""
