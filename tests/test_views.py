"""The view helpers the Grad-CAM and Analyses pages share: the result cache and the analysis registry."""
from views.analyses import SECTIONS
from views.models import ResultCache


def test_result_cache_drops_the_least_recently_used():
    cache = ResultCache(max_entries=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # now "b" is the oldest
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    assert cache.get("missing") is None


def test_every_analysis_section_has_a_title_and_a_renderer():
    titles = [s.title for s in SECTIONS]
    assert titles == ["Response std", "Branch ratio", "Lesion study", "Loss landscape", "Shattered gradients",
                      "Dead ReLUs"]
    assert all(callable(s.render) for s in SECTIONS)
