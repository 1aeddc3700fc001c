"""Launch buttons that open the course's real files (a Sphinx extension of this book).

The theme's own launch buttons link to the page's source below the book folder, which for a
lecture is the executed copy ``book/lectures/NN_topic.ipynb`` that only exists in a build. Here a
lecture page opens ``lectures/NN_topic.md`` (the jupytext source, a notebook in JupyterLab) and an
assignment page opens ``assignments/NN_topic/NN_topic.ipynb`` (the released student notebook):

* Binder (``dgm_launch_binderhub_url``) builds the repository's ``environment.yml``;
* JupyterHub (``dgm_launch_jupyterhub_url``, empty: no button) pulls the repository with
  nbgitpuller and opens the file in JupyterLab;
* Colab (``dgm_launch_colab_url``) opens an ``.ipynb`` from GitHub: the assignment itself, or for
  a lecture the executed notebook of the published book (``_sources/lectures/NN_topic.ipynb`` on
  the branch ``dgm_launch_book_branch``).

The repository URL and branch come from ``repository:`` in ``_config.yml``. Every link is a plain
``<a>``: nothing is fetched from another host when a page is read.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode


def launch_targets(pagename: str) -> dict[str, str] | None:
    """Repository paths a page opens: ``{"lab": path for Binder/JupyterHub, "colab": kind}``.

    ``lectures/01_autoencoders`` -> ``lectures/01_autoencoders.md``;
    ``assignments/01_autoencoders/01_autoencoders`` -> the same path + ``.ipynb``.
    Other pages get no launch buttons (None).
    """
    folder, _, name = pagename.partition("/")
    if folder == "lectures" and name[:2].isdigit():
        return {"lab": f"lectures/{name}.md", "colab": "book"}
    if folder == "assignments" and name[:2].isdigit():
        return {"lab": f"{pagename}.ipynb", "colab": "repo"}
    return None


def launch_links(pagename: str, repo_url: str, branch: str, binderhub_url: str = "",
                 jupyterhub_url: str = "", colab_url: str = "", book_branch: str = "gh-pages") -> list[dict]:
    """The launch links of one page as ``[{"text", "url"}, ...]`` (empty for other pages)."""
    targets = launch_targets(pagename)
    if targets is None:
        return []
    repo_url = repo_url.rstrip("/")
    if not repo_url.startswith("https://github.com/"):
        raise ValueError(f"repository url must be https://github.com/ORG/REPO, got {repo_url!r}")
    org, repo = repo_url.removeprefix("https://github.com/").split("/")[:2]
    links = []
    if binderhub_url:
        links.append({"text": "Binder", "url": f"{binderhub_url.rstrip('/')}/v2/gh/{org}/{repo}/{branch}"
                      f"?urlpath={quote('lab/tree/' + targets['lab'], safe='')}"})
    if jupyterhub_url:
        query = urlencode({"repo": repo_url, "branch": branch, "urlpath": f"lab/tree/{repo}/{targets['lab']}"},
                          safe="/")
        links.append({"text": "JupyterHub", "url": f"{jupyterhub_url.rstrip('/')}/hub/user-redirect/git-pull?{query}"})
    if colab_url:
        if targets["colab"] == "repo":
            path = f"{branch}/{targets['lab']}"
        else:
            path = f"{book_branch}/_sources/{pagename}.ipynb"
        links.append({"text": "Colab", "url": f"{colab_url.rstrip('/')}/github/{org}/{repo}/blob/{path}"})
    return links


def _add_buttons(app, pagename, templatename, context, doctree):
    options = app.config.html_theme_options
    links = launch_links(
        pagename, options.get("repository_url", ""), options.get("repository_branch", "main"),
        app.config.dgm_launch_binderhub_url, app.config.dgm_launch_jupyterhub_url,
        app.config.dgm_launch_colab_url, app.config.dgm_launch_book_branch,
    )
    if not links or "header_buttons" not in context:
        return
    context["header_buttons"].append({
        "type": "group",
        "tooltip": "Run this page",
        "icon": "fas fa-rocket",
        "label": "launch-buttons",
        "buttons": [{"type": "link", "text": link["text"], "tooltip": f"Open in {link['text']}",
                     "icon": "fas fa-play", "url": link["url"], "label": f"launch-{link['text'].lower()}"}
                    for link in links],
    })


def setup(app):
    app.add_config_value("dgm_launch_binderhub_url", "", "html")
    app.add_config_value("dgm_launch_jupyterhub_url", "", "html")
    app.add_config_value("dgm_launch_colab_url", "", "html")
    app.add_config_value("dgm_launch_book_branch", "gh-pages", "html")
    # after the theme's prep_header_buttons (500) and its own launch/source buttons (501)
    app.connect("html-page-context", _add_buttons, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
