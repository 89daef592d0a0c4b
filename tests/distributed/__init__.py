"""Distributed tests: the Compose topology of docker-compose.yml, run natively."""
