"""AppTest for the step-0 gradient view: on the Build page beside the architecture (a plain/ResNet pair, with and
without BatchNorm, the seeds control), on the Gradient flow page while the run store is empty, and a clear message
where there is no data or the setting is refused — never a traceback, never a made-up chart."""
import base64
import json

import numpy as np
from streamlit.testing.v1 import AppTest

from resnet_viz.analyses import init_gradients as engine
from resnet_viz.config import ModelConfig
from resnet_viz.datasets.cifar10 import load_cifar10

TIMEOUT = 120
K = "keep_build_"
HEADING = "Gradients at step 0, before any training"


def page(app_test, name: str, tmp_path, data, depth: int = 8, seeds: int = 2) -> AppTest:
    """The page on an empty run store, with the step-0 view's depth and seeds chosen."""
    at = app_test(f"pages/{name}", tmp_path / "runs", data, timeout=TIMEOUT)
    at.session_state["keep_init_grad_seeds"] = seeds
    if name == "1_Build.py":
        at.session_state[K + "cifar_depth"] = depth
        at.session_state[K + "width"] = 0.5
    else:
        at.session_state["keep_gradflow_depth"] = depth
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def values(array) -> np.ndarray:
    """A plotly array from a chart's JSON: a list, or a typed array ({"dtype", "bdata": base64})."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array, dtype=float)


def profile(at: AppTest) -> dict:
    [fig] = [json.loads(c.proto.spec) for c in at.get("plotly_chart")
             if "at step 0" in json.loads(c.proto.spec)["layout"]["title"]["text"]]
    return fig


def test_build_page_shows_the_pair_at_step_0(tmp_path, data_dir, app_test):
    at = page(app_test, "1_Build.py", tmp_path, data_dir).run()
    no_exception(at)
    assert not at.error and not at.warning
    assert HEADING in [s.value for s in at.subheader]
    assert at.slider(key="keep_init_grad_seeds").value == 2
    fig = profile(at)
    names = [t.get("name") for t in fig["data"] if t.get("showlegend") is not False]
    assert names[0].startswith("plain-8 (width ×0.5) · first ÷ last conv ")
    assert names[1].startswith("resnet-8 (width ×0.5) · first ÷ last conv ")
    assert len(fig["data"]) == 6  # two seeds: a band and a median line per net
    # The very numbers of the engine, for the tiny data set's first batches of seeds 0 and 1.
    expected = engine.init_gradients(ModelConfig(depth=8, width=0.5), load_cifar10(data_dir, download=False),
                                     seeds=(0, 1))
    np.testing.assert_allclose(values(fig["data"][2]["y"]), np.median(expected.plain.norms, 0), rtol=1e-5)
    metrics = {m.label: m.value for m in at.metric}
    ratio = np.median(expected.resnet.norms[:, 0] / expected.resnet.norms[:, -2])
    assert metrics["resnet-8 (width ×0.5)"] == engine._ratio_text(float(ratio))
    text = " ".join(m.value for m in at.markdown)
    assert "**What the numbers show.** At step 0, plain-8 (width ×0.5)'s first-layer gradient is" in text
    assert "Batch of 120 images drawn from 120 training images, seeds 0, 1" in " ".join(c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 3  # and the two block diagrams, as before


def test_build_page_without_batchnorm_and_with_more_seeds(tmp_path, data_dir, app_test):
    at = page(app_test, "1_Build.py", tmp_path, data_dir).run()
    at.toggle(key=K + "batchnorm").set_value(False).run()
    no_exception(at)
    fig = profile(at)
    assert "plain-8 (no BN, width ×0.5) · first ÷ last conv" in fig["data"][2]["name"]
    text = " ".join(m.value for m in at.markdown)
    assert "resnet-8 (no BN, width ×0.5)'s first-layer gradient is" in text
    at.slider(key="keep_init_grad_seeds").set_value(3).run()
    no_exception(at)
    assert "median over 3 seeds" in profile(at)["layout"]["title"]["text"]
    assert "seeds 0, 1, 2" in " ".join(c.value for c in at.caption)


def test_build_page_without_data_says_so_and_draws_nothing(tmp_path, app_test):
    at = page(app_test, "1_Build.py", tmp_path, tmp_path / "no-data").run()
    no_exception(at)
    assert not at.error
    [info] = [i.value for i in at.info if "CIFAR-10's training images" in i.value]
    assert "No CIFAR-10 found in" in info and "sidebar" in info
    assert len(at.get("plotly_chart")) == 2  # the block diagrams only: no gradient chart without real images


def test_build_page_refuses_depth_1202_with_the_reason(tmp_path, monkeypatch, data_dir, app_test):
    import resnet_viz.nets.summary
    monkeypatch.setattr(resnet_viz.nets.summary, "available_memory", lambda device: 8 * 2**30)  # any machine: a laptop's
    at = page(app_test, "1_Build.py", tmp_path, data_dir, depth=1202).run()
    no_exception(at)
    [refusal] = [w.value for w in at.warning]
    assert refusal.startswith("Refused: plain-1202 (width ×0.5) and resnet-1202 (width ×0.5) are too large")
    assert "8.0 GiB free" in refusal
    assert len(at.get("plotly_chart")) == 2


def test_imagenet_family_is_explained(tmp_path, data_dir, app_test):
    at = page(app_test, "1_Build.py", tmp_path, data_dir).run()
    at.radio(key=K + "family").set_value("imagenet").run()
    no_exception(at)
    assert any("covers the CIFAR nets" in i.value for i in at.info)


def test_gradient_flow_page_shows_it_while_the_store_is_empty(tmp_path, data_dir, app_test):
    at = page(app_test, "3_Gradient_flow.py", tmp_path, data_dir, seeds=1).run()
    no_exception(at)
    assert any("No runs with recorded gradient norms yet" in i.value for i in at.info)
    assert at.select_slider(key="keep_gradflow_depth").value == 8
    fig = profile(at)
    assert "seed 0" in fig["layout"]["title"]["text"] and len(fig["data"]) == 2
    at.toggle(key="keep_gradflow_bn").set_value(False).run()
    no_exception(at)
    assert profile(at)["data"][0]["name"].startswith("plain-8 (no BN) · first ÷ last conv")
