"""Assets: the files a card points at. The HTTP client, the resumable download job, the
content-addressed cache and its integrity records, publishing into an asset store, serving and
cleaning one, and air-gapped bundles.
"""
