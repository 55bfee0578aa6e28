"""Fetching models: SOURCE forms (sources), Hugging Face / Civitai / URL resolution (remote), verified resumable
downloads (download), A1111 folders (place), and the `get` / `install` actions (actions)."""
