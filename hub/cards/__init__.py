"""Cards: what the hub knows about each model, read from card files and registries.

The card format, read in one place and written in one place:
``frontmatter`` (card text to bounded YAML data, with line numbers), ``schema`` (the JSON Schema
and its readable findings), ``card`` (the typed card and ``parse_card``), ``write`` (a card, or
changes to one, back to text) and ``mshub`` (MindSpore Hub's free-text results and uids).

Collections of cards: ``sources`` (where cards come from: directories, registry URLs, index
stubs), ``catalog`` (every card a command can see, scanned once per command; the one
``name@version`` resolver and default-version rule), ``listing`` (the rows of ``list``/``info``),
``validate`` (checking card files in bulk), ``index`` (a registry's ``index.json``), ``remote``
(registries served over HTTP), ``search`` and ``pages`` (a registry's static HTML catalog).

Nothing in this package imports MindSpore or NumPy: ``yolohub list/info/validate`` stay fast.
"""
