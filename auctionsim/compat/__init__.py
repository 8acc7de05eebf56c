"""Bridges to the tools bidding researchers already use.

* :mod:`auctionsim.compat.auctionnet`: AuctionNet strategies (``BaseBiddingStrategy``) as
  bidders, and AuctionNet's logged-data format (18 columns, CSV or Parquet) read and written.
* :mod:`auctionsim.compat.rllib`: the parallel env registered for RLlib and a multi-agent PPO
  config with one shared policy, in one call.

Importing this package imports neither pyarrow nor Ray; each module imports what it needs.
"""
