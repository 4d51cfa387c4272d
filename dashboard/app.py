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

#: (script under views/, title, url path). No icons: Streamlit turns a page's icon into the
#: tab's favicon, fetched from a font CDN, and the dashboard must work offline.
PAGES = [
    ("leaderboard.py", "Leaderboard", "leaderboard"),
    ("curves.py", "Severity curves", "curves"),
    ("breakdown.py", "Breakdown map", "breakdown"),
    ("failures.py", "Failure analysis", "failures"),
    ("compare.py", "A vs B", "compare"),
    ("curation.py", "Curation report", "curation"),
    ("run_info.py", "Run info", "run"),
]


def main() -> None:
    st.set_page_config(page_title="restorelab", layout="wide")
    pages = [
        st.Page(HERE / "views" / script, title=title, url_path=url, default=i == 0)
        for i, (script, title, url) in enumerate(PAGES)
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
