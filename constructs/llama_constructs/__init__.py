"""The project's CDK constructs, by component; a package of its own name beside the ``constructs`` library.

``common`` holds what several components build (the KMS key, data and access-log buckets, the notification
topic, the bundled Python function); ``foundation``, ``endpoint``, ``benchmark`` and ``pipeline`` each hold one
component's constructs. A component imports ``common`` and, for ``benchmark``, ``endpoint`` (it deploys
endpoints); nothing else (tests/test_layering.py). See constructs/README.md for why this lives in a src folder.
"""

# The constructs library's __init__ calls pkgutil.extend_path, which appends every folder named constructs on
# sys.path to the library's __path__, this src folder included when the checkout's root is on sys.path (always:
# app.py lives there). The folder holds no module but this package; refuse the second name it would get there.
if __name__ != "llama_constructs":
    raise ImportError(f"import llama_constructs, not {__name__}: constructs/ is its src folder (constructs/README.md)")
