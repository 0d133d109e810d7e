"""`fcrm gateway`: a Best-of-N gateway in front of any OpenAI-compatible server. `core` (pure:
candidates, selection, response shaping), `upstream` (httpx calls with retries), `service` (request
handling and the FastAPI routes), `app` (the Ray Serve application and the CLI), `config`."""
