"""Model tasks: what a user does with a card's network. Load (one typed record of what loading
established), predict, evaluate, train, the demo, export and the backends that run exports, the
compile cache and the machine check behind ``yolohub env``.
"""
