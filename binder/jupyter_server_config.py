# Jupyter Server settings for Binder.  repo2docker does not read this file by itself:
# binder/postBuild copies it to <environment>/etc/jupyter/jupyter_server_config.py.
#
# The RabbitMQ management UI of the private node is reached through jupyter-server-proxy's
# built-in route, <jupyter base URL>proxy/<management port>/ (e.g. /user/<you>/proxy/15673/ on
# Binder; `workqueue-lab node status` shows the port).  It needs one fix:
#
# Tornado, under the proxy, invents an ETag for every GET response that has none.  RabbitMQ's
# API responses have none, so the browser caches them with Tornado's ETag and then polls with
# `If-None-Match: <that ETag>`; the proxy forwards the header, and RabbitMQ's HTTP server
# (Cowboy) answers 412 Precondition Failed for a conditional request on a resource without an
# ETag.  The UI then shows "Management API returned status code 412".  Marking such responses
# `Cache-Control: no-store` keeps the browser from ever making the conditional request.
# tests/test_browser.py and tests/test_binder.py check this.


def _no_conditional_requests_to_cowboy(response):
    headers = response.headers
    if headers.get("Server", "").startswith("Cowboy") and "Etag" not in headers:
        headers["Cache-Control"] = "no-store"


c = get_config()  # noqa: F821 -- provided by Jupyter when it loads this file
c.ServerProxy.non_service_rewrite_response = [_no_conditional_requests_to_cowboy]

# The course notebooks are saved without outputs, as on every way in (workqueue_lab/notebook_files.py).
c.ContentsManager.pre_save_hook = "workqueue_lab.notebook_files.pre_save_hook"
