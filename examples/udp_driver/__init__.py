"""A driver behind UDP: an asyncio service that hands request bursts to the driver's batch calls
(``service``), a small client (``client``), the wire format (``wire``) and a throughput run
beside the single-call version (``throughput``). Run from ``examples/``:

    python -m udp_driver.throughput

Documented in docs/running-a-driver.md ("A UDP service").
"""
