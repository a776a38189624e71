-- wrk script: POST of the counter's handler (bench/http.sh); the answer is
-- checked by bench/wrk/mixed.lua and the specs, not here (wrk counts
-- non-2xx answers itself).
--   wrk -t2 -c50 -d5s -s bench/wrk/post.lua http://127.0.0.1:PORT
-- luacheck: globals wrk
wrk.method = "POST"
wrk.path = "/__async/handler/increment"
wrk.headers["Host"] = "suite.test"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Async-Request"] = "1"
wrk.body = '{"args":[],"signals":{"count":1}}'
