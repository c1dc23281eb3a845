"""The training run: its configuration, the Trainer and its loop, the progressive schedule, the
losses, the optimisers and moving average, the data stream, the run folder and clean stopping.

Jittor's environment is prepared here, once, before any of these modules imports Jittor.
"""
