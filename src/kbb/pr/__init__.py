"""`kbb pr TARGET`: prepares the upstream pull requests of a target, one per
patch group, for a human to review and submit (docs/workflow.md).

- `config`: pr/TARGET/pr.toml and the templates;
- `newest`: the newest upstream (the pinned nightly, or a git remote);
- `checks`: the series against the pinned release and the newest upstream,
  and upstream's own linter;
- `numbers`, `texts`: ISSUE.md and PR.md from the templates and results;
- `prepare`: the checks, texts and branch pr/GROUP of each group;
- `push`: pushes a branch, only once the human made PR.md ready.

Nothing leaves the machine but through `push`.
"""
