"""`sd1kit batch`: many pictures from a list of jobs, in this process or on a Ray cluster, with no picture lost or
made twice.

- `jobs`: the job sources (A1111's "Prompts from file or textbox" lines, JSONL requests, a folder of pictures
  regenerated from their metadata, an X/Y/Z grid), each job with a deterministic id and output name;
- `manifest`: DIR/manifest.jsonl, one line per finished job, read back to resume;
- `worker`: what runs a job (a model loaded once per worker, found by its hash), the same code in-process and as a
  Ray actor;
- `run`: the drivers (in-process, Ray), which alone write pictures and manifest lines;
- `grid`: the X/Y grid picture with its labels.
"""
