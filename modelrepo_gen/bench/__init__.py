"""The benchmark behind `make bench`: python -m modelrepo_gen.bench --output bench_results"""
