"""The restorelab dashboard: ``restorelab dashboard RUN_DIR [RUN_DIR ...]``.

A Streamlit multipage app, one URL per page (``/leaderboard``, ``/curves``, ``/breakdown``,
``/failures``, ``/compare``, ``/curation``, ``/run``), with sidebar navigation. The folders
come from the command line (``streamlit run app.py -- RUN_DIR ...``) or the
``RESTORELAB_RUN_DIRS`` environment variable (``os.pathsep``-separated), and can be changed
in the sidebar. Each page script lives in ``views/``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent

#: (script under views/, title, url path, icon)
PAGES = [
    ("leaderboard.py", "Leaderboard", "leaderboard", ":material/leaderboard:"),
    ("curves.py", "Severity curves", "curves", ":material/show_chart:"),
    ("breakdown.py", "Breakdown map", "breakdown", ":material/grid_on:"),
    ("failures.py", "Failure analysis", "failures", ":material/broken_image:"),
    ("compare.py", "A vs B", "compare", ":material/compare:"),
    ("curation.py", "Curation report", "curation", ":material/filter_alt:"),
    ("run_info.py", "Run info", "run", ":material/info:"),
]


def main() -> None:
    st.set_page_config(page_title="restorelab", layout="wide", page_icon=":material/image:")
    pages = [
        st.Page(HERE / "views" / script, title=title, url_path=url, icon=icon, default=i == 0)
        for i, (script, title, url, icon) in enumerate(PAGES)
    ]
    page = st.navigation(pages, position="sidebar")
    try:
        page.run()
    except Exception as exc:  # a defect, not a user error: say so without a traceback wall
        st.error(
            f"This page could not be drawn: {type(exc).__name__}: {exc}. This is a bug in "
            "restorelab; please report it with the run folder's run.json."
        )


main()
