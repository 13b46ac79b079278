# title: T
# table: cloud.office365.management
def f: f; f
