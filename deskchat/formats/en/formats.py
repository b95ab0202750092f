"""Django's own pages (the admin) write moments as deskchat/timefmt.py does: "Dec 2, 2026 05:12".

Django's en-us default would write "Dec. 2, 2026, 5:12 a.m.", a second format beside ours. Only
the display formats change; the admin's date and time inputs keep Django's, which its calendar
widget reads.
"""

DATE_FORMAT = "M j, Y"
TIME_FORMAT = "H:i"
DATETIME_FORMAT = "M j, Y H:i"
SHORT_DATE_FORMAT = "M j, Y"
SHORT_DATETIME_FORMAT = "M j, Y H:i"
