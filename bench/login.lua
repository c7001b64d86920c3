-- wrk script: a successful JSON login (one Argon2id verification each).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format('{"email": "%s", "password": "%s"}', os.getenv("BENCH_EMAIL"), os.getenv("BENCH_PASSWORD"))
