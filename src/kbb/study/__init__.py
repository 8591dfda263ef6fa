"""What the fix changes on real data: pristine keras against the fix's build,
trained on scikit-learn's bundled data sets, paired by seed (docs/impact.md).

Modules by job: `config` (every setting), `data` (data sets and models),
`worker` (trains in one build and one backend), `metrics` and `stats`
(no numpy: scores, paired intervals, summaries), `render` and `plot` (the
page, from templates/impact.md, and the plot), `run` (`kbb study`:
builds, workers, results, page).
"""
