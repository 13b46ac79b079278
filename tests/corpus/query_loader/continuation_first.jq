#   continuation first
.
