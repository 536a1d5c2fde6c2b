"""Assets: the files a card points at, from a link to a verified path in the cache and back out.

Downloading (one way down: the API, the job, how bytes arrive, where they land)::

    files.py         download / verify / rehash: cards to verified files (the public API)
    download.py      the download job: cache check, lock, links in order, verify, move into place
    ranged.py        HTTP Range/If-Range resume with retries     local.py   file:// copies
    partial.py       the partial file, its resume state, byte cap and free-space check
    pipeline.py      write and hash received chunks on worker threads
    http.py          the session: timeouts, redirects, retry budget, small documents
    urls.py          which links may be fetched, mirrors, redaction

The cache (shared by downloads, ``verify``, ``cache ls/rm/prune`` and ``list``)::

    cache_layout.py  where everything lives (paths from digests only)
    records.py       asset records (declared hash -> blob, owners), verification records
    locks.py         the one lock class: download lock and blob lock
    quarantine.py    where mismatching bytes go
    integrity.py     streaming sha256, expected-hash rules, verification records
    cache.py         status and listing          cleanup.py   cache rm, cache prune

Checkpoints into networks: ``weights.py`` (build, read, load strictly: the one way, used by
``hub.load``, ``publish``'s fit check and the demo).

Publishing and sharing: ``publish.py`` (the card of a new checkpoint), ``publish_checks.py``,
``store_write.py`` (the append-only asset store), ``store_gc.py``, ``serve.py`` (a static Range
server), ``bundle.py`` (air-gapped pack/unpack).  Exported graphs are added to cards by
:mod:`hub.tasks.export_publish`, which needs the network to check them.

Progress bars, atomic writes and safe joins are the whole hub's: :mod:`hub.progress`,
:mod:`hub.fileio`.
"""
