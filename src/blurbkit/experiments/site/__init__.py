"""The report site of `blurbkit report`: leaderboard, model, dataset, study and comparison pages
(build.py writes them; pages.py, studies.py the pages; html.py, plots.py the markup and SVGs)."""
