"""Speed: VAETransformer's training loop against a hand-written PyTorch loop.

Both train the same architecture (encoder n_features-256-128-2k, mirrored decoder,
learned per-feature variance, Adam) on the same preloaded float32 tensor, with the
same batch size; the hand-written loop has no wrapper at all. Runs alternate
between the two so machine noise hits both alike; medians are reported.

    python benchmarks/speed.py [--rows 20000] [--features 64] [--epochs 5] [--repeats 3]

Run it alone: two torch processes sharing the cores slow each other down many-fold.
"""

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from sklearn.decomposition import PCA
from torch import nn

from skvae import VAETransformer


def mlp(sizes):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ELU())
    return nn.Sequential(*layers)


def hand_written_fit(X, n_components, epochs, batch_size, seed=0):
    """The minimal VAE loop a PyTorch user would write: seconds per epoch."""
    torch.manual_seed(seed)
    n_features = X.shape[1]
    encoder = mlp([n_features, 256, 128, 2 * n_components])
    decoder = mlp([n_components, 128, 256, n_features])
    raw_variance = nn.Parameter(torch.full((n_features,), 0.5413))
    params = [*encoder.parameters(), *decoder.parameters(), raw_variance]
    optimizer = torch.optim.Adam(params, lr=1e-3, fused=True)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(X))
        for i in range(0, len(X), batch_size):
            x = X[order[i : i + batch_size]]
            mu, log_var = encoder(x).chunk(2, dim=1)
            z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
            variance = nn.functional.softplus(raw_variance) + 1e-3
            log_lik = -0.5 * (variance.log() + (x - decoder(z)) ** 2 / variance).sum(1)
            kl = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(1)
            loss = (kl - log_lik).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return (time.perf_counter() - start) / epochs


def skvae_fit(X, n_components, epochs, batch_size):
    vae = VAETransformer(
        n_components,
        activation="elu",
        warmup_epochs=0,
        batch_size=batch_size,
        max_iter=epochs,
        n_iter_no_change=epochs + 1,
        random_state=0,
        device="cpu",
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vae.fit(X)
    return (time.perf_counter() - start) / epochs, vae


def median_seconds(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--components", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    rng = np.random.RandomState(0)
    X = rng.standard_normal((args.rows, args.features)).astype(np.float32)
    X_tensor = torch.from_numpy(X.copy())
    hand, ours, vae = [], [], None
    for _ in range(args.repeats):  # alternate, so drifts in machine speed hit both
        hand.append(
            hand_written_fit(X_tensor, args.components, args.epochs, args.batch_size)
        )
        seconds, vae = skvae_fit(X, args.components, args.epochs, args.batch_size)
        ours.append(seconds)
    hand_s, ours_s = statistics.median(hand), statistics.median(ours)

    pca = PCA(args.components).fit(X)
    row = X[:1]
    single_vae = median_seconds(lambda: vae.transform(row), 200)
    single_pca = median_seconds(lambda: pca.transform(row), 200)
    encode_s = median_seconds(lambda: vae.transform(X), args.repeats)

    print(
        f"{args.rows} x {args.features} float32, batch {args.batch_size}, "
        f"{torch.get_num_threads()} threads, medians of {args.repeats}"
    )
    print("| measure | hand-written loop | VAETransformer | ratio |")
    print("|---|---|---|---|")
    print(f"| train s/epoch | {hand_s:.3f} | {ours_s:.3f} | {ours_s / hand_s:.2f}x |")
    print(
        f"| train rows/s | {args.rows / hand_s:,.0f} | {args.rows / ours_s:,.0f} | "
        f"{hand_s / ours_s:.2f} |"
    )
    print(f"| transform rows/s | | {args.rows / encode_s:,.0f} | |")
    print(
        f"| transform 1 row (PCA: {single_pca * 1e6:.0f} us) | | "
        f"{single_vae * 1e6:.0f} us | {single_vae / single_pca:.2f}x PCA |"
    )


if __name__ == "__main__":
    main()
