"""Trading state: the instrument master, bitemporal snapshots of positions and working orders,
order and position lifecycles with a hash-chained change log, exposure and governance.

The pure cores (snapshots, lifecycle, exposure, policy) do no I/O and read no clock; `store`
holds the tables, `poll` ties one poll of one account together, `cli` is `ledger-etl positions`,
`orders`, `exposure`, `lifecycle`, `snapshot` and `verify-changelog`.
"""
