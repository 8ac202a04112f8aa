"""The command lines, assembled on top of the three packages (spu_circuits < tngd < validation
< spu_tngd): `spu` (compile, simulate, validate). `tngd` lives in :mod:`tngd.cli`."""
