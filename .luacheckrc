std = "luajit"
codes = true
max_line_length = 120
exclude_files = { "build/**", "bench/node_modules/**", ".tmp/**" }
files["spec/**"] = { std = "+busted" }
files["lua/async/ngx.lua"] = { read_globals = { "ngx" } }
