# title: T
# table: nowhere
.
