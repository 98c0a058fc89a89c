"""Worker processes of one backup (``--processes``): the pool, the worker and their messages."""
