# gatemq CPython port: asyncio + ssl.
