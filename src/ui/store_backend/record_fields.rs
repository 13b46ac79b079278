//! Where the workloads put a record's object and user agent.

use serde_json::Value;

/// The first string found at any of these paths of a record.
fn first_str(v: &Value, paths: &[&[&str]]) -> String {
    for path in paths {
        let mut cur = v;
        let mut ok = true;
        for k in *path {
            match cur.get(*k) {
                Some(x) => cur = x,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok
            && let Some(s) = cur.as_str()
            && !s.is_empty()
        {
            return s.to_string();
        }
    }
    String::new()
}

/// The object an operation touched: a file, a mail subject, a policy, a target.
pub fn object_of(v: &Value) -> String {
    first_str(
        v,
        &[
            &["ObjectId"],
            &["SourceFileName"],
            &["Subject"],
            &["Item", "Subject"],
            &["AffectedItems"],
            &["ItemName"],
            &["PolicyName"],
        ],
    )
}

/// The user agent of a record, wherever the workload puts it.
pub fn user_agent_of(v: &Value) -> String {
    let direct = first_str(v, &[&["UserAgent"], &["ClientInfoString"]]);
    if !direct.is_empty() {
        return direct;
    }
    for list in ["ExtendedProperties", "DeviceProperties"] {
        if let Some(items) = v.get(list).and_then(Value::as_array) {
            for it in items {
                if it.get("Name").and_then(Value::as_str) == Some("UserAgent")
                    && let Some(s) = it.get("Value").and_then(Value::as_str)
                {
                    return s.to_string();
                }
            }
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_and_user_agents_are_found_where_workloads_put_them() {
        assert_eq!(object_of(&json!({"ObjectId": "f.docx"})), "f.docx");
        assert_eq!(object_of(&json!({"Item": {"Subject": "hi"}})), "hi");
        assert_eq!(user_agent_of(&json!({"UserAgent": "curl"})), "curl");
        assert_eq!(
            user_agent_of(&json!({"ExtendedProperties": [
                {"Name": "x", "Value": "y"}, {"Name": "UserAgent", "Value": "Edge"}]})),
            "Edge"
        );
        assert_eq!(user_agent_of(&json!({})), "");
    }
}
