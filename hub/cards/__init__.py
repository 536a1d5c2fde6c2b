"""Cards: the card format (parse, schema, write back), the card sources and the catalog of every
card a command can see (one resolver, scanned once per command), the list/info rows, registry
indexes (local and remote), search, the static HTML pages and MindSpore Hub parity.

Nothing in this package imports MindSpore or NumPy: ``yolohub list/info/validate`` stay fast.
"""
