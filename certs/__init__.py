# gatemq-certs: CA, server and device certificate tooling (host only, uses cryptography).
