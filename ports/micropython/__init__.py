# gatemq MicroPython port: asyncio + tls (mbedTLS).
