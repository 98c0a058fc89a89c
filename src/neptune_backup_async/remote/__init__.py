"""What a backup reads from: the :class:`~.source.Source` port, Neptune's adapter and artifact stores."""
