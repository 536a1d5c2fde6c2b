"""Model tasks: what a user does with a card's network.

Data flows one way: a command opens the catalog once (:mod:`hub.cards.catalog`), ``load``
(:mod:`~hub.tasks.load`) binds the card, fetches and strictly loads the weights
(:mod:`~hub.assets.weights`) and attaches one :class:`~hub.tasks.record.LoadRecord` to the network
(:mod:`~hub.tasks.execution`: ``net.hub``, graph or PyNative execution); predict, evaluate, train,
the demo and export read that record instead of resolving or fetching again.  Also here: export
(``export``, ``export_verify``, ``export_publish``: exported graphs added to cards as assets),
the backends that run exports (``backends``, ``deploy``), drawing and the demo's gallery, the
compile cache and the machine check behind ``yolohub env``.
"""
