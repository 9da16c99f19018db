"""Local stand-ins for services the tests cannot reach: real servers on loopback ports."""
