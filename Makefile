# Two entry points: `make demo` (train + predict on the bundled samples) and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1

.PHONY: demo test setup bench-quick clean browser

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test,bench]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m malmoi demo

# chromium and a Korean font for the web page's browser test (tests/serve/test_page.py); never fails:
# without apt (or root) the test skips itself
BROWSER_PKGS := chromium fonts-nanum
APT_GET      := apt-get install -y -q $(BROWSER_PKGS) >/dev/null 2>&1 || \
                (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $(BROWSER_PKGS) >/dev/null 2>&1)
browser:
	@(command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi nanum) || ($(APT_GET)) || \
		echo "chromium or fonts-nanum not installed: the browser test may skip"

test: $(STAMP) browser
	$(PY) -m pytest

clean:
	rm -rf $(VENV) runs/demo
