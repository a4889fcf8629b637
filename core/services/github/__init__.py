"""The GitHub worker: keeps linked issues and pull requests, the items they
belong to and their index documents in step with GitHub (seed 002).

`manage.py sync_github` runs `worker.run()`; `client.GitHubAPI` is the only
code that talks to GitHub.
"""
