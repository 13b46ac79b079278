# title: T
# table: auth.all
select(.Operation == "UserLoginFailed"
