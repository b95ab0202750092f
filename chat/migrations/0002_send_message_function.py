"""PostgreSQL: store a chat message in one statement (`chat_send_message`), for services.send_message.

A message is the hot write of the product, and every ORM call of a daphne process runs in one
thread, so each round trip of a message holds up every socket of the process. The function does
what the three statements of the ORM path do, in the same order and with the same locks:

1. UPDATE the room's last_seq (only while it is active), which takes the room's row lock;
2. read the author's presence with a fresh snapshot, so a leave that committed while this
   statement waited for the lock is seen (a single SQL statement would see the old one);
3. INSERT the message.

Called in autocommit mode it is one round trip and one commit. A refusal raises, so the seq taken
in step 1 rolls back with it: sequence numbers stay gapless. The unique constraint on
(room, author, client_msg_id) still detects a retried send, as an IntegrityError.

Other databases (SQLite, the embedded default) keep the ORM path, so this runs on PostgreSQL only.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION chat_send_message(
    p_room_id bigint, p_author_id integer, p_kind varchar, p_body text, p_client_msg_id varchar,
    p_created timestamptz
) RETURNS TABLE (message_id bigint, message_seq integer, message_author_name varchar)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_seq integer;
    v_name varchar;
    v_id bigint;
BEGIN
    UPDATE chat_chatroom SET last_seq = last_seq + 1
     WHERE id = p_room_id AND state = 'active'
    RETURNING last_seq INTO v_seq;
    IF v_seq IS NULL THEN
        RETURN;  -- no such room, or it has ended: the caller reads which
    END IF;
    SELECT display_name INTO v_name FROM chat_chatparticipant
     WHERE room_id = p_room_id AND user_id = p_author_id AND left_at IS NULL;
    IF v_name IS NULL THEN
        RAISE EXCEPTION 'not_participant';  -- undoes the seq taken above
    END IF;
    INSERT INTO chat_chatmessage (room_id, seq, author_id, author_name, kind, body, client_msg_id, created)
    VALUES (p_room_id, v_seq, p_author_id, v_name, p_kind, p_body, p_client_msg_id, p_created)
    RETURNING id INTO v_id;
    RETURN QUERY SELECT v_id, v_seq, v_name;
END
$$;
"""

DROP = "DROP FUNCTION IF EXISTS chat_send_message(bigint, integer, varchar, text, varchar, timestamptz);"


def on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("chat", "0001_initial")]

    operations = [migrations.RunPython(on_postgresql(CREATE), on_postgresql(DROP))]
