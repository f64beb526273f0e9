import numpy as np

from llmvs.human import human_agreement


def test_human_row_tvsum(tvsum):
    tau, rho = np.mean([human_agreement(v) for v in tvsum.values()], axis=0)
    assert (round(tau, 4), round(rho, 4)) == (0.1774, 0.2042)


def test_human_row_summe(summe):
    tau, rho = np.mean([human_agreement(v) for v in summe.values()], axis=0)
    assert (round(tau, 4), round(rho, 4)) == (0.2051, 0.2126)
