"""PostgreSQL: chat_send_message refuses an absent author with its own SQLSTATE, DC001.

Migration 0002's function raised a bare `RAISE EXCEPTION 'not_participant'` (SQLSTATE P0001,
shared by every PL/pgSQL RAISE), which the code could tell apart only by the message's text.
Now the refusal carries a code of its own (chat.sql.NOT_PARTICIPANT), and the code recognises
that. The function is otherwise the same, and CREATE OR REPLACE keeps its grants.
"""

import importlib

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
        -- undoes the seq taken above
        RAISE EXCEPTION 'not_participant' USING ERRCODE = 'DC001';
    END IF;
    INSERT INTO chat_chatmessage (room_id, seq, author_id, author_name, kind, body, client_msg_id, created)
    VALUES (p_room_id, v_seq, p_author_id, v_name, p_kind, p_body, p_client_msg_id, p_created)
    RETURNING id INTO v_id;
    RETURN QUERY SELECT v_id, v_seq, v_name;
END
$$;
"""

# Going back restores 0002's function exactly.
PREVIOUS = importlib.import_module("chat.migrations.0002_send_message_function")


class Migration(migrations.Migration):
    dependencies = [("chat", "0004_engineers_group")]

    operations = [migrations.RunPython(PREVIOUS.on_postgresql(CREATE), PREVIOUS.on_postgresql(PREVIOUS.CREATE))]
