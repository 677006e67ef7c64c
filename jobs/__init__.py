"""Background jobs: what each job type does, given its validated parameters."""
