# m365.jq: helpers shared by every detection in queries/.
#
# Loaded with `include "m365";` by jaq (embedded in the binary) and by the real jq
# (`jq -L queries/lib`). Rules for this file, enforced by the loader for jaq:
# definitions only, no recursion, no env/input/time-of-day. Every helper behaves the same
# under jq 1.6 and jaq 3 (the test suite checks it on every test record).

# Devo `has(f, v)`: case-sensitive substring; false on anything but a string
# (jq 1.6 raises an error on null|contains, jaq returns false: guard the type).
def devo_has($s): type == "string" and contains($s);

# Devo `weakhas(f, v)`: ASCII-case-insensitive substring; false on non-strings.
def ci_contains($s): type == "string" and (ascii_downcase | contains($s | ascii_downcase));

# True when the input string contains any of the given (lower-case) words, ignoring case.
def ci_any($words): type == "string" and (ascii_downcase as $t | any($words[]; . as $w | $t | contains($w)));

# True when the input equals one of the values of the array $set.
def one_of($set): . as $x | any($set[]; . == $x);

# A Name/Value (or Key/Value) array as an object: [{"Name":"a","Value":"b"}] -> {"a":"b"}.
# Anything else (null, a string, an object) gives {}.
def nv_object:
  if type == "array"
  then reduce (.[] | objects) as $e ({}; . + {(($e.Name // $e.Key // "") | tostring): $e.Value})
  else {} end;

# Exchange/SCC cmdlet parameters as an object, from either shape Microsoft sends:
# an array of {Name, Value} (Exchange admin) or a string `-Name "Value" ...` (SCC, str-params).
def params:
  if (.Parameters | type) == "array" then .Parameters | nv_object
  elif (.Parameters | type) == "string"
  then reduce (.Parameters | scan("-([A-Za-z0-9]+) \"([^\"]*)\"")) as $m ({}; . + {($m[0]): $m[1]})
  else {} end;

# The cmdlet parameters as one lower-case text (for substring tests over any shape).
def params_text:
  if (.Parameters | type) == "string" then .Parameters | ascii_downcase
  elif (.Parameters | type) == "array"
  then [.Parameters[] | objects | "-\(.Name // "" | tostring) \(.Value // "" | tostring)"] | join(" ") | ascii_downcase
  else "" end;

# One entry of ExtendedProperties by Name (null when absent): cheaper than ext_props when a
# detection needs one or two of them.
def ext_prop($name): first(.ExtendedProperties[]? | objects | select(.Name == $name) | .Value) // null;

# One entry of OperationProperties by name: exactly `op_props[$name]` (the last entry with
# that Name/Key wins, null when none) without building the whole object, which costs a copy
# per entry on every MailItemsAccessed.
def op_prop($name):
  .OperationProperties
  | if type == "array"
    then reduce (.[] | objects | select(((.Name // .Key // "") | tostring) == $name)) as $e (null; $e.Value)
    else null end;

# ExtendedProperties / DeviceProperties / OperationProperties as objects.
def ext_props: .ExtendedProperties | nv_object;
def dev_props: .DeviceProperties | nv_object;
def op_props: .OperationProperties | nv_object;

# ModifiedProperties as {Name: {old, new}}; values that are JSON strings stay strings here.
def mod_props:
  if (.ModifiedProperties | type) == "array"
  then reduce (.ModifiedProperties[] | objects) as $e ({};
         . + {(($e.Name // "") | tostring): {old: $e.OldValue, new: $e.NewValue}})
  else {} end;

# A value that may be JSON inside a string ("[]", "{\"a\":1}"): parsed when it parses,
# itself otherwise.
def fromjson_or_self: if type == "string" then (. as $s | try fromjson catch $s) else . end;

# A ClientIP without port, brackets or the IPv4-mapped prefix; null for non-strings and
# for the empty / "<null>" placeholders. (The plain-address case returns first: it is the
# common one, and detections run on every sign-in.)
def ip_noport:
  if type != "string" or . == "" or . == "<null>" then null
  elif contains(":") | not then .
  elif startswith("[") then .[1:] | split("]") | first | ltrimstr("::ffff:")
  elif (split(":") | length) == 2 then split(":") | first
  else ltrimstr("::ffff:") end;

# The address of the actor: ActorIpAddress, else ClientIP, else ClientIPAddress, normalised.
def actor_ip: (.ActorIpAddress // .ClientIP // .ClientIPAddress) | ip_noport;

# The domain of an e-mail-like string, lower-case; null when there is no "@".
def domain_of: if type == "string" and contains("@") then split("@") | last | ascii_downcase else null end;

# An address outside the actor's organisation: its domain differs from the domain of
# the record's UserId, or it is an `#ext#` guest identity. Plain names (no "@") are not.
def external_to($actor):
  type == "string" and (contains("#ext#") or ((domain_of) as $d | $d != null and $d != ($actor | domain_of)));

# An e-mail address outside the organisation: it has a domain, and that domain is neither
# the actor's (UserId), nor the record's OrganizationName, nor the first label of it
# (`northwind.example` is internal to `northwind.onmicrosoft.com`). Plain names are not.
def is_external_addr($actor; $org):
  domain_of as $d
  | ($org | if type == "string" then ascii_downcase else "" end) as $o
  | $d != null and $d != ($actor | domain_of) and $d != $o
    and (($o | startswith(($d | split(".") | first) + ".")) | not);

# A cmdlet switch value as lower-case text without PowerShell's "$": "$False" -> "false".
def flag_value: if . == null then null else tostring | ascii_downcase | ltrimstr("$") end;

# Addresses inside a forwarding/recipient value: "smtp:a@x.com;b@y.com" -> ["a@x.com","b@y.com"].
def addresses:
  if type == "string"
  then [split(";")[] | split(",")[] | ltrimstr(" ") | rtrimstr(" ") | ltrimstr("smtp:") | ltrimstr("SMTP:") | select(contains("@"))]
  elif type == "array" then [.[] | strings | ltrimstr("smtp:") | ltrimstr("SMTP:") | select(contains("@"))]
  else [] end;

# The columns Devo parses out of a raw record (what `from <table> where ...` shows).
def devo_columns: {Operation, UserId, Workload, ActorIpAddress, ObjectId, ClientIP};

# RecordType as a number whether Microsoft sent 25 or "25".
def record_type: .RecordType | if type == "string" then (tonumber? // null) else . end;

# A string, or null for anything else (so hits never carry half-typed junk).
def str_or_null: if type == "string" then . else null end;
