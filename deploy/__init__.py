"""The application-deploy service: HTTP API, records and remote deployment."""
