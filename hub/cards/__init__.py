"""Cards: the card format (parse, schema, write back), the catalog of every card a command can
see, registry indexes (local and remote), search, the static HTML pages and MindSpore Hub parity.

Nothing in this package imports MindSpore or NumPy: ``yolohub list/info/validate`` stay fast.
"""
