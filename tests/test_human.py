import numpy as np
import pytest

from llmvs.human import human_agreement


def test_human_row_tvsum(tvsum):
    tau, rho = np.mean([human_agreement(v) for v in tvsum.values()], axis=0)
    assert tau == pytest.approx(0.1774, abs=1e-3)
    assert rho == pytest.approx(0.2042, abs=1e-3)


def test_human_row_summe(summe):
    tau, rho = np.mean([human_agreement(v) for v in summe.values()], axis=0)
    assert tau == pytest.approx(0.2051, abs=1e-3)
    assert rho == pytest.approx(0.2126, abs=1e-3)
