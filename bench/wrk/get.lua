-- Plain GET of the URL on the command line (with the -H headers).
dofile("bench/wrk/report.lua")
