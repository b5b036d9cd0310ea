"""The probe's exported forward pass equals scikit-learn's, and classes are balanced."""

import numpy as np
import pytest

from thinkctl.probes import probe as P


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 12)) * rng.uniform(0.5, 5, size=12) + rng.normal(size=12)
    y = (x[:, 0] - 0.5 * x[:, 3] + rng.normal(scale=0.5, size=400) > 1.5).astype(int)
    return x, y


@pytest.mark.parametrize("kind", ["mlp", "logreg"])
def test_exported_probe_matches_sklearn(data, kind):
    x, y = data
    pipe = P.fit(x, y, kind)
    probe = P.export(pipe)
    assert np.allclose(probe.prob(x), pipe.predict_proba(x)[:, 1], atol=1e-6)
    assert probe.prob(x[0]).shape == (1,)
    again = P.Probe.from_tensors(probe.tensors())
    assert np.allclose(again.prob(x), probe.prob(x), atol=1e-5)  # float32 storage
    # The engine's float32 evaluation, on float32 features as the hooks capture them.
    x32 = x.astype(np.float32)
    assert np.allclose(again.prob(x32, np.float32), again.prob(x32), atol=1e-5, rtol=0)


def test_class_weights_balance_the_classes():
    y = np.array([0] * 10 + [1] * 90)
    w = P.class_weights(y)
    assert w[y == 0].sum() == pytest.approx(w[y == 1].sum())
    assert w.sum() == pytest.approx(len(y))
